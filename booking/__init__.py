"""Device catalogue, opening hours, maintenance windows, booking rules, allocation, price quotes and subsidies."""
