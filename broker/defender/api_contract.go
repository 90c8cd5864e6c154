package defender

// This file lists the functions other packages rely on; their bodies live in
// topics.go, decode.go, validate.go and response.go.
//
//	func ValidThingName(name string) error
//	func Topic(thing string, kind TopicKind) (string, error)        // Defender_GetTopic
//	func MatchTopic(topic string) (kind TopicKind, thing string, ok bool) // Defender_MatchTopic
//	func (k TopicKind) Format() Format; IsPublish() bool; IsResponse() bool; Accepted() bool
//	func ResponseTopic(thing string, f Format, accepted bool) string
//	func Validate(f Format, payload []byte, opts Options) Result
//	func EncodeResponse(f Format, r Response) ([]byte, error)
//	func DecodeResponse(f Format, b []byte) (Response, error)
//	func OversizeProblem(size int64) *Problem                          // the size verdict, for callers that read only MaxPayload+1 bytes
//	const MaxPayload = 128 * 1024
//	const MaxInteger = math.MaxInt64                                  // the largest report_id, counter or total AWS reads
