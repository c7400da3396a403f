"""Admin pages for rules (registered from LoyaltyConfig.ready)."""
