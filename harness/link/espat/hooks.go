package espat

// Test hooks: events a real module produces on its own, triggered on demand
// (esp-at.md §5 "test hooks").

// DropLink makes the peer vanish: the link closes and the host gets CLOSED
// at once, also in the middle of a CIPSEND (the payload is still taken, then
// Recv and SEND FAIL, §3.9). It reports whether a link was open.
// With several links open it drops the one with the lowest link id.
func (m *Module) DropLink() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	ls := m.openLinks()
	if len(ls) == 0 || !m.serving {
		return false
	}
	m.unsolicited(func() { m.closeLinkLocked(ls[0], "dropped", true) })
	return true
}

// WiFiDrop loses the access point: WIFI DISCONNECT, CLOSED for an open link,
// and after ReconnectDelay WIFI CONNECTED and WIFI GOT IP again (the module
// reconnects by itself, §3.6). It reports whether Wi-Fi was up.
func (m *Module) WiFiDrop() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.wifiUp || !m.serving {
		return false
	}
	m.unsolicited(func() { m.wifiDownLocked("dropped") })
	ssid := m.joinedSSID
	m.afterLocked("reconnect", m.cfg.ReconnectDelay, func() {
		if !m.wifiUp && m.joinedSSID == ssid && (m.cwmode == 1 || m.cwmode == 3) && !m.running {
			m.wifiUpLocked("reconnect")
		}
	})
	return true
}

// Reboot restarts the module on its own (brown-out, watchdog): the link and
// Wi-Fi vanish without URCs, then `ready` follows after ReadyDelay.
func (m *Module) Reboot() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.serving {
		m.unsolicited(func() { m.bootLocked("reboot") })
	}
}

// InjectBeforePrompt makes the next AT+CIPSEND answer in three chunks,
// `<CR><LF>OK<CR><LF>`, then data as a +IPD message from the peer, then
// `<CR><LF>>` (v2.0 did write OK and > separately, esp-at#410). The data is
// counted as received. Use it only when the host can parse data as protocol
// traffic from the peer.
func (m *Module) InjectBeforePrompt(data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.injectPrompt = append([]byte(nil), data...)
}
