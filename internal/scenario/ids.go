package scenario

import (
	"fmt"

	"github.com/google/uuid"
)

// namespace roots the deterministic IDs of scenario keys.
var namespace = uuid.MustParse("5b0e5f8e-2f0a-4c43-9a4e-7c1f3c1d7a10")

// ID turns a symbolic key ("t1", "p1", "i1", "i1/b2") into a deterministic
// UUID (uuid.NewSHA1), so that a scenario replayed into any store names the
// same rows.
func ID(key string) uuid.UUID { return uuid.NewSHA1(namespace, []byte(key)) }

// BuildKey is the key of build number n of the instance with key instance;
// CreateInstance names build #1 this way.
func BuildKey(instance string, n int) string { return fmt.Sprintf("%s/b%d", instance, n) }

// UserKey is the key of the user that claims in scenarios.
const UserKey = "user"

// OrganizationKey is the key of the organisation every scenario template
// belongs to.
const OrganizationKey = "org"
