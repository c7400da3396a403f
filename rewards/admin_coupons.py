"""Admin pages for coupons (registered from RewardsConfig.ready)."""
