"""What every domain package shares and none owns: the error hierarchy and its HTTP problem details, the
types of values that cross the HTTP edge, database row helpers and money. It imports nothing of ours."""
