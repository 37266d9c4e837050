"""reestr compiler: registry → validated models → signed policy bundles."""
