-- OEE: reasons technicians attach to down time, and the nightly per-device, per-day summary that lets a
-- year of history answer in milliseconds.

CREATE TABLE downtime_reason_code (
    code        text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{0,39}$'),
    name        text NOT NULL,
    name_zh     text NOT NULL
);
INSERT INTO downtime_reason_code (code, name, name_zh) VALUES
    ('machine_fault', 'Machine fault', '设备故障'),
    ('tool_breakage', 'Tool breakage', '刀具损坏'),
    ('material_shortage', 'Material shortage', '缺料'),
    ('program_error', 'Program error', '程序错误'),
    ('no_operator', 'No operator', '无操作人员'),
    ('quality_issue', 'Quality issue', '质量问题'),
    ('other', 'Other', '其他');

-- A reason attached to the down interval that starts at `start` on a device (the state table's row).
CREATE TABLE downtime_reason (
    device_id   text        NOT NULL,
    start       timestamptz NOT NULL,
    code        text        NOT NULL REFERENCES downtime_reason_code (code),
    note        text        NOT NULL DEFAULT '',
    set_by      bigint      REFERENCES app_user (id),
    set_at      timestamptz NOT NULL,
    PRIMARY KEY (device_id, start)
);

CREATE TABLE oee_daily (
    device_id      text        NOT NULL,
    day            date        NOT NULL,
    planned_s      double precision NOT NULL,  -- opening hours minus planned maintenance
    booked_s       double precision NOT NULL,
    running_s      double precision NOT NULL,
    setup_s        double precision NOT NULL,
    idle_s         double precision NOT NULL,
    down_s         double precision NOT NULL,
    maintenance_s  double precision NOT NULL,
    offline_s      double precision NOT NULL,
    micro_stop_s   double precision NOT NULL,
    parts_total    double precision NOT NULL,
    parts_good     double precision,            -- null: the device does not count good parts
    ideal_cycle_s  double precision,            -- null: no ideal cycle time configured
    computed_at    timestamptz NOT NULL,
    PRIMARY KEY (device_id, day)
);
