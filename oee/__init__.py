"""State intervals, OEE and utilisation per device, customer and booking; usage and billing build on them."""
