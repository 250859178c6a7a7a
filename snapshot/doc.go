// Package snapshot keeps point-in-time copies of the synced trees and
// databases.
//
// It owns hard-link snapshots built from the previous snapshot and the index's
// changes, rotation by age buckets, database dumps, manifests, restore and
// verify.
//
// Not built yet: this package holds no code until the snapshot issue lands.
package snapshot
