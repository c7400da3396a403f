"""Admin pages for draws (registered from RewardsConfig.ready)."""
