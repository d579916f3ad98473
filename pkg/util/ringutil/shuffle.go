package ringutil

// ShuffleShardSize is the shard size to ask dskit's ShuffleShard for, given
// a tenant's configured size and the ring's replication factor: 0 (all
// instances) stays 0, and a size below the replication factor is raised to
// it, so that shuffle sharding never stores a series on fewer replicas than
// the replication factor promises. With zone awareness dskit rounds the size
// up to a multiple of the number of zones itself.
func ShuffleShardSize(size, replicationFactor int) int {
	if size <= 0 {
		return 0
	}
	return max(size, replicationFactor)
}
