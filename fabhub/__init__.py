"""FabHub's composition root: settings, database, migrations, the web app, scheduled jobs and the CLI.
Domain packages never import it; it hands them their pool, settings and clock."""
