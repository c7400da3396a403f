"""Admin pages for tiers (registered from LoyaltyConfig.ready)."""
