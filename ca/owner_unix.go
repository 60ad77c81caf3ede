//go:build unix

package ca

import (
	"fmt"
	"io/fs"
	"syscall"
)

// checkOwner refuses a secret file or directory owned by a user other than
// the bastion's or root: its mode says nothing about what its owner can do
// (read the key or PIN, or replace it), as sshd's StrictModes holds.
func checkOwner(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := int(st.Uid); uid != geteuid() && uid != 0 {
		return fmt.Errorf("%s is owned by uid %d, not by the bastion's user (uid %d) or root: that user can read or replace it; chown it", path, uid, geteuid())
	}
	return nil
}
