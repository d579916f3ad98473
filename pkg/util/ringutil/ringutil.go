// Package ringutil is the one home of Meridian's hash rings: the
// configuration of a ring member (Config), the service that makes this
// process a member and watches the ring (Ring), and hashing keys onto a
// ring (Token). The distributor, store-gateway and compactor rings use all
// of it; the ingester ring keeps dskit's classic lifecycler, shares the KV
// store and forgets dead members with AutoForgetter (see docs/ring.md).
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
