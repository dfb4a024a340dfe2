"""Background loops run by the leader or every replica: culler, leader election, tenant
metrics."""
