"""Partner API for spending: points payments, the rewards catalogue and redemptions, coupons, stored value."""
