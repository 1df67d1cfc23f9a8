"""Data: the synthetic phantom (``sspcmr.data.synthetic``); preparation and data modules follow."""
