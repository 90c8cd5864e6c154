// Package dockertest builds small local images for tests of the container
// code path. There is no registry here, so images are built FROM scratch out
// of host files (a binary plus its shared-library closure) with the real
// Docker engine, tagged ddhil-test/..., and removed afterwards.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// Closure returns bin and every shared object it loads (per ldd), as
// absolute host paths.
func Closure(ctx context.Context, bin string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("dockertest: ldd %s: %w", bin, err)
	}
	files := []string{bin}
	re := regexp.MustCompile(`(/[^\s]+) \(0x[0-9a-f]+\)`)
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		files = append(files, m[1])
	}
	if len(files) == 1 && !strings.Contains(string(out), "statically linked") {
		return nil, fmt.Errorf("dockertest: no libraries found in ldd output %q", out)
	}
	return files, nil
}

// SamePaths maps each host file to the same path in the image.
func SamePaths(files []string) map[string]string {
	m := map[string]string{}
	for _, f := range files {
		m[f] = f
	}
	return m
}

// BuildImage builds tag FROM scratch holding files (path in the image ->
// host path, symlinks followed) and an empty /tmp.
func BuildImage(ctx context.Context, tag string, files map[string]string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dockerfile := "FROM scratch\nCOPY rootfs/ /\n"
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))}); err != nil {
		return err
	}
	if _, err := tw.Write([]byte(dockerfile)); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "rootfs/tmp/", Mode: 0o1777, Typeflag: tar.TypeDir}); err != nil {
		return err
	}
	for dst, f := range files {
		data, err := os.ReadFile(f) // follows symlinks
		if err != nil {
			return fmt.Errorf("dockertest: %w", err)
		}
		st, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("dockertest: %w", err)
		}
		hdr := &tar.Header{Name: filepath.Join("rootfs", dst), Mode: int64(st.Mode().Perm()), Size: int64(len(data))}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}

	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("dockertest: %w", err)
	}
	defer cli.Close()
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true})
	if err != nil {
		return fmt.Errorf("dockertest: build %s: %w", tag, err)
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("dockertest: build %s: %w", tag, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("dockertest: build %s: %s", tag, msg.Error)
		}
	}
	if _, err := cli.ImageInspect(ctx, tag); err != nil {
		return fmt.Errorf("dockertest: built %s but cannot inspect it: %w", tag, err)
	}
	return nil
}

// RemoveImage deletes tag (forced).
func RemoveImage(ctx context.Context, tag string) error {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("dockertest: %w", err)
	}
	defer cli.Close()
	_, err = cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("dockertest: remove %s: %w", tag, err)
	}
	return nil
}

// ContainerExists reports whether a container with this id is still known
// to the engine (running or not).
func ContainerExists(ctx context.Context, id string) (bool, error) {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return false, fmt.Errorf("dockertest: %w", err)
	}
	defer cli.Close()
	_, err = cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dockertest: inspect %s: %w", id, err)
	}
	return true, nil
}

// ContainersFrom counts containers (any state) created from image.
func ContainersFrom(ctx context.Context, image string) (int, error) {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return 0, fmt.Errorf("dockertest: %w", err)
	}
	defer cli.Close()
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("ancestor", image)})
	if err != nil {
		return 0, fmt.Errorf("dockertest: list: %w", err)
	}
	return len(res.Items), nil
}
