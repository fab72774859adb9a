-- When each invoice and usage record last changed, for `updated_since` on their lists.
SELECT track_updates('invoice');
SELECT track_updates('usage_record');
