"""Admin pages for program (registered from LoyaltyConfig.ready)."""
