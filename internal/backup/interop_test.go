package backup

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildAge builds the standard age command (filippo.io/age/cmd/age, a tool
// dependency in go.mod) from the module cache into a temporary directory.
func buildAge(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the age command")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build age: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "age")
	cmd := exec.Command(goCmd, "build", "-o", bin, "filippo.io/age/cmd/age")
	cmd.Dir = filepath.Join("..", "..") // the module root, whose go.mod pins age
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build filippo.io/age/cmd/age: %v\n%s", err, out)
	}
	return bin
}

func runAge(t *testing.T, bin string, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &ageError{err: err, stderr: stderr.String()}
	}
	return out, nil
}

type ageError struct {
	err    error
	stderr string
}

func (e *ageError) Error() string { return e.err.Error() + ": " + e.stderr }

// TestStandardAgeToolDecryptsBackup: a backup made by the Writer decrypts
// with the standard age command and the exported identity
// (AgeIdentityString in an identity file), to the archive plaintext; a
// file the age command encrypts to the recipient is read by the Reader;
// and another key's identity does not decrypt.
func TestStandardAgeToolDecryptsBackup(t *testing.T) {
	bin := buildAge(t)
	out, err := runAge(t, bin, nil, "--version")
	if err != nil || strings.TrimSpace(string(out)) != "v1.3.2" {
		t.Fatalf("age --version: %q, %v", out, err)
	}
	dir := t.TempDir()
	k := NewRecoveryKey()
	f := newFixture(3000, 150) // several payload chunks
	archive := f.write(t, k)
	idFile := filepath.Join(dir, "identity.txt")
	if err := os.WriteFile(idFile, []byte("# parley backup export-identity\n"+k.AgeIdentityString()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	archiveFile := filepath.Join(dir, "backup.age")
	if err := os.WriteFile(archiveFile, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	plain, err := runAge(t, bin, nil, "-d", "-i", idFile, archiveFile)
	if err != nil {
		t.Fatalf("age -d: %v", err)
	}
	if !bytes.HasPrefix(plain, []byte("PARLEYBK")) || !bytes.Equal(plain, decrypt(t, archive, k)) {
		t.Fatalf("age -d output (%d bytes) is not the archive plaintext", len(plain))
	}
	r, err := newPlainReader(bytes.NewReader(plain), nil, new(k.KeyID()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := drain(r)
	if err != nil {
		t.Fatal(err)
	}
	if d := f.diff(got); d != "" {
		t.Fatal(d)
	}

	// The other way: age -r RECIPIENT encrypts a plaintext the Reader opens.
	reenc, err := runAge(t, bin, plain, "-r", k.Recipient().String())
	if err != nil {
		t.Fatalf("age -r: %v", err)
	}
	if got, err := readAll(bytes.NewReader(reenc), k); err != nil || f.diff(got) != "" {
		t.Fatalf("Reader on age's encryption: %v", err)
	}

	// Another recovery key's identity does not open it.
	other := filepath.Join(dir, "other.txt")
	if err := os.WriteFile(other, []byte(NewRecoveryKey().AgeIdentityString()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runAge(t, bin, nil, "-d", "-i", other, archiveFile); err == nil || !strings.Contains(err.Error(), "no identity matched") {
		t.Fatalf("age -d with another identity: %v", err)
	}
}
