// Package ringutil is the one home of Meridian's hash rings: the
// configuration of a ring member (Config, and LifecycleConfig for members
// that hold data), the service that makes this process a member and watches
// the ring (Ring), forgetting dead members, and hashing keys onto a ring
// (Token). Every ring uses it: ingester, distributor, store-gateway and
// compactor (see docs/ring.md).
package ringutil

import "hash/fnv"

// Token hashes the parts, separated by '/', onto the ring.
func Token(parts ...[]byte) uint32 {
	h := fnv.New32a()
	for i, p := range parts {
		if i > 0 {
			_, _ = h.Write([]byte{'/'})
		}
		_, _ = h.Write(p)
	}
	return h.Sum32()
}
