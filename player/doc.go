// Package player replays recorded terminal sessions.
package player
