"""Alerting: health problems and recoveries sent to email, Slack, a webhook, Apprise and the
console, with a cool-down kept in the `alert_states` table."""
