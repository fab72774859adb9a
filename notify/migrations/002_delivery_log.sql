-- The staff's delivery log lists messages newest first and syncs by `updated_at`.
SELECT track_updates('notification');
CREATE INDEX notification_created_idx ON notification (created_at DESC, id DESC);
