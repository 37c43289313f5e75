"""The staff console: its own process and port (STAFF_CONSOLE_PORT), one account per person,
reports read and moved through the card service API, every view of a person's data audited."""
