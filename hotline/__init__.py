"""The application: settings, app factory, web routes, Twilio webhooks and the CLI."""
