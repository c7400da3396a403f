"""Admin pages for wallet (registered from RewardsConfig.ready)."""
