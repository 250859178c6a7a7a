package delta_test

import (
	"bytes"
	"fmt"
	"log"
	"strings"

	"github.com/tandemhost/tandem/pipe/delta"
)

func Example() {
	old := strings.Repeat("All work and no play makes Jack a dull boy.\n", 2000)
	new := strings.Replace(old, "dull", "DULL", 1)

	// Receiver: sign the copy it has and send the signature.
	sig, err := delta.Sign(strings.NewReader(old), int64(len(old)))
	if err != nil {
		log.Fatal(err)
	}
	var toSender bytes.Buffer
	if _, err := sig.WriteTo(&toSender); err != nil {
		log.Fatal(err)
	}

	// Sender: read the signature and stream the delta of the new content.
	sig, err = delta.ReadSignature(&toSender, 1<<30)
	if err != nil {
		log.Fatal(err)
	}
	var toReceiver bytes.Buffer
	sent, err := delta.Diff(sig, strings.NewReader(new), &toReceiver)
	if err != nil {
		log.Fatal(err)
	}

	// Receiver: rebuild the new content (into a temp file, in real life).
	var result bytes.Buffer
	if _, err := delta.Apply(strings.NewReader(old), &toReceiver, &result, delta.Limits{MaxNewSize: sent.NewSize}); err != nil {
		log.Fatal(err) // and discard result
	}
	fmt.Println(result.String() == new, sent.NewSize, sent.CopiedBytes, sent.LiteralBytes)
	// Output: true 88000 86016 1984
}
