"""Training: SFT of the toy base policy and DPO through TRL."""
