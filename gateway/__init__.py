"""The gateway: protocol adapters (OPC UA, Modbus TCP, MQTT) that turn machine data into canonical
samples and device states, hand them to the telemetry writer, spool them while the database is away,
and keep track of each device's health."""
