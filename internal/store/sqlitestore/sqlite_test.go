package sqlitestore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/store"
)

func open(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "veil.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestSitesCRUD(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t)
	s := store.Site{ID: "s1", Domain: "example.com", Retention: 30 * 24 * time.Hour, AllowedParams: []string{"utm_*", "ref"}, Created: time.Unix(100, 0).UTC()}
	if err := db.CreateSite(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateSite(ctx, store.Site{ID: "s2", Domain: "example.com"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate domain: err = %v, want ErrExists", err)
	}
	got, err := db.SiteByDomain(ctx, "example.com")
	if err != nil || got.ID != "s1" || got.Retention != s.Retention || len(got.AllowedParams) != 2 || !got.Created.Equal(s.Created) {
		t.Fatalf("SiteByDomain = %+v, %v", got, err)
	}
	got.Retention, got.UserUnit = 90*24*time.Hour, true
	if err := db.UpdateSite(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got, _ = db.SiteByID(ctx, "s1"); got.Retention != 90*24*time.Hour || !got.UserUnit {
		t.Fatalf("update lost: %+v", got)
	}
	if err := db.DeleteSite(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SiteByID(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := db.DeleteSite(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t)
	tok := store.Token{ID: "t1", Name: "ci", Role: store.RoleIngest, Hash: []byte{1, 2, 3}, Sites: []string{"s1"}, Created: time.Unix(5, 0)}
	if err := db.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	got, err := db.TokenByHash(ctx, []byte{1, 2, 3})
	if err != nil || got.Role != store.RoleIngest || len(got.Sites) != 1 {
		t.Fatalf("TokenByHash = %+v, %v", got, err)
	}
	if _, err := db.TokenByHash(ctx, []byte{9}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown hash: %v", err)
	}
	if err := db.DeleteToken(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if toks, _ := db.Tokens(ctx); len(toks) != 0 {
		t.Fatalf("tokens after delete: %v", toks)
	}
}

// Concurrent creators of a day's salt must all end up with the same one, or
// one visitor would get two pseudonyms on one day.
func TestSaltConcurrentCreatorsAgree(t *testing.T) {
	db, _ := open(t)
	var wg sync.WaitGroup
	got := make([][]byte, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := db.Salt(context.Background(), "2026-11-22", []byte{byte(i), 1, 2, 3})
			if err != nil {
				t.Error(err)
			}
			got[i] = s
		}()
	}
	wg.Wait()
	for i := range got {
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("creator %d got a different salt", i)
		}
	}
}

// A destroyed salt must not survive anywhere in the database files.
func TestDeletedSaltsLeaveNoBytes(t *testing.T) {
	ctx := context.Background()
	db, path := open(t)
	old := bytes.Repeat([]byte("OLDSALT!"), 4)
	keep := bytes.Repeat([]byte("NEWSALT!"), 4)
	if _, err := db.Salt(ctx, "2026-11-20", old); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Salt(ctx, "2026-11-22", keep); err != nil {
		t.Fatal(err)
	}
	n, err := db.DeleteSaltsBefore(ctx, "2026-11-21")
	if err != nil || n != 1 {
		t.Fatalf("DeleteSaltsBefore = %d, %v", n, err)
	}
	if s, _ := db.Salt(ctx, "2026-11-22", []byte("x")); !bytes.Equal(s, keep) {
		t.Fatal("kept salt changed")
	}
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if bytes.Contains(b, old) {
			t.Errorf("%s still contains the destroyed salt", filepath.Base(f))
		}
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	db, path := open(t)
	if _, err := db.SQL().Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path); err == nil {
		t.Fatal("opened a database with a newer schema")
	}
}
