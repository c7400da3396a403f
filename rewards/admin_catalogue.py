"""Admin pages for catalogue (registered from RewardsConfig.ready)."""
