-- When each organization and user last changed, for `updated_since` on their lists.
SELECT track_updates('organization');
SELECT track_updates('app_user');
