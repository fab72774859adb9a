-- name: down-during-bookings
-- Changes into 'down' since :since on devices while one of their bookings was under way (a repeated 'down'
-- row continues the interval and is not a new change), with the booking and the names a message needs.
SELECT s.device_id, d.name AS device_name, s.time AS down_at, b.id AS booking_id, b.organization_id,
       o.name AS organization_name, lower(b.during) AS start, upper(b.during) AS "end"
FROM (
    SELECT device_id, time, state, lag(state) OVER (PARTITION BY device_id ORDER BY time) AS previous
    FROM state_change
    WHERE time > CAST(:since AS timestamptz) - interval '1 day' AND time <= :now
) AS s
JOIN booking_slot b ON b.device_id = s.device_id AND b.during @> s.time AND b.status IN ('confirmed', 'in_progress')
JOIN device_entry d ON d.id = s.device_id
JOIN org_profile o ON o.id = b.organization_id
WHERE s.state = 'down' AND s.previous IS DISTINCT FROM 'down' AND s.time > :since
ORDER BY s.time, s.device_id;
