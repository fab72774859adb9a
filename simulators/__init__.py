"""Simulated machines that speak the real protocols (OPC UA, Modbus TCP, MQTT), for the demo and the
tests. They import nothing of FabHub's: they are stand-ins for machines, not parts of the gateway."""
