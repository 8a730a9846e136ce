"""What every layer shares and nothing else: the base config model, the area type,
the SQL declarative base. Imports nothing from the other packages."""
