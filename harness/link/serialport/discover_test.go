package serialport

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.bug.st/serial/enumerator"
)

// TestDiscoverFilters feeds the enumerator seam with what go.bug.st/serial
// reports on Linux for a bench (recorded shapes: sysfs VID/PID upper-cased,
// ST-LINK VCP serials) - no USB devices exist in this sandbox. The by-id
// links are real symlinks in a temp dir.
func TestDiscoverFilters(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "dev")
	require.NoError(t, os.Mkdir(dev, 0o755))
	for _, n := range []string{"ttyACM0", "ttyACM1", "ttyUSB0"} {
		require.NoError(t, os.WriteFile(filepath.Join(dev, n), nil, 0o644))
	}
	byID := filepath.Join(dir, "by-id")
	require.NoError(t, os.Mkdir(byID, 0o755))
	require.NoError(t, os.Symlink(filepath.Join(dev, "ttyACM1"), filepath.Join(byID, "usb-STMicroelectronics_STLINK-V3_003A00233133510D37363734-if02")))
	require.NoError(t, os.Symlink(filepath.Join(dev, "gone"), filepath.Join(byID, "usb-dangling-if00")))

	oldList, oldDir := listPorts, byIDDir
	t.Cleanup(func() { listPorts, byIDDir = oldList, oldDir })
	byIDDir = byID
	listPorts = func() ([]*enumerator.PortDetails, error) {
		return []*enumerator.PortDetails{
			{Name: filepath.Join(dev, "ttyACM0"), IsUSB: true, VID: "0483", PID: "374B", SerialNumber: "0669FF555052836687031919", Product: "STM32 STLink", Manufacturer: "STMicroelectronics"},
			{Name: filepath.Join(dev, "ttyUSB0"), IsUSB: true, VID: "0403", PID: "6001", SerialNumber: "A50285BI", Product: "FT232R USB UART"},
			{Name: "/dev/ttyS0"},
			{Name: filepath.Join(dev, "ttyACM1"), IsUSB: true, VID: "0483", PID: "374E", SerialNumber: "003A00233133510D37363734", Product: "STLINK-V3"},
			nil,
		}, nil
	}

	all, err := USBPorts()
	require.NoError(t, err)
	require.Len(t, all, 3, "non-USB ports are left out")
	assert.Equal(t, filepath.Join(dev, "ttyACM0"), all[0].Name, "sorted by name")

	st, err := Discover()
	require.NoError(t, err)
	require.Len(t, st, 2)
	assert.Equal(t, "0669FF555052836687031919", st[0].SerialNumber)
	assert.Equal(t, filepath.Join(dev, "ttyACM0"), st[0].Stable(), "no by-id link: the device name")
	assert.Equal(t, "STLINK-V3", st[1].Product)
	assert.Equal(t, filepath.Join(byID, "usb-STMicroelectronics_STLINK-V3_003A00233133510D37363734-if02"), st[1].Stable())
	for _, p := range st {
		assert.True(t, p.ST())
	}

	listPorts = func() ([]*enumerator.PortDetails, error) { return nil, errors.New("sysfs unreadable") }
	_, err = Discover()
	assert.ErrorContains(t, err, "sysfs unreadable")
}

// TestDiscoverOnThisMachine runs the real enumerator: it must not fail, and
// every port it reports must be an ST device.
func TestDiscoverOnThisMachine(t *testing.T) {
	ports, err := Discover()
	require.NoError(t, err)
	for _, p := range ports {
		assert.True(t, p.ST(), "%+v", p)
	}
	t.Logf("ST-LINK ports attached here: %d", len(ports))
}
