-- The audit log: append-only.

-- name: record-audit!
INSERT INTO audit_log (at, actor_id, actor, action, entity, entity_id, before, after, reason)
VALUES (:at, :actor_id, :actor, :action, :entity, :entity_id, :before, :after, :reason);

-- name: audit-entries
SELECT id, at, actor_id, actor, action, entity, entity_id, before, after, reason
FROM audit_log
WHERE (CAST(:entity AS text) IS NULL OR entity = :entity)
  AND (CAST(:entity_id AS text) IS NULL OR entity_id = :entity_id)
  AND (CAST(:actor AS text) IS NULL OR strpos(lower(actor), lower(:actor)) > 0)
  AND (CAST(:since AS timestamptz) IS NULL OR at >= :since)
  AND (CAST(:until AS timestamptz) IS NULL OR at < :until)
  AND (CAST(:before_id AS bigint) IS NULL OR id < :before_id)
ORDER BY id DESC
LIMIT :limit;
