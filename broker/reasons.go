package broker

// Disconnect reasons (Event.Reason on EventDisconnect). They reuse AWS IoT
// Core's lifecycle-event disconnectReason names where one fits.
const (
	ReasonClientDisconnect = "CLIENT_INITIATED_DISCONNECT" // the client sent DISCONNECT
	ReasonConnectionLost   = "CONNECTION_LOST"             // EOF / reset without DISCONNECT
	ReasonDuplicateClient  = "DUPLICATE_CLIENTID"          // a newer connection took the client ID
	ReasonAuthError        = "AUTH_ERROR"                  // policy refusal
	ReasonClientError      = "CLIENT_ERROR"                // protocol error, QoS 2, oversize, no CONNECT in time
	ReasonKeepAlive        = "MQTT_KEEP_ALIVE_TIMEOUT"     // nothing received for 1.5 x keep-alive
	ReasonServerDisconnect = "SERVER_INITIATED_DISCONNECT" // broker shutdown or DropConnectionAfter
	ReasonAPIDisconnect    = "API_INITIATED_DISCONNECT"    // Kick
	ReasonTLSHandshake     = "TLS_HANDSHAKE_FAILED"        // not an AWS name: no MQTT session existed
)

// Policy refusal reasons (Event.Reason on EventPolicy). Each refusal ends
// the connection, as AWS IoT Core does for unauthorized actions.
const (
	RefusedQoS2          = "qos2"            // PUBLISH with QoS 2
	RefusedOversize      = "oversize"        // payload (or packet) over 128 KB
	RefusedRetainAWS     = "retain-reserved" // RETAIN on a "$" topic
	RefusedResponseTopic = "response-topic"  // a client published on a Defender response topic
	RefusedPolicy        = "policy"          // strict policy: another thing's topic
)
