// Command vagrantbox builds the libvirt Vagrant box `make vagrant` boots:
// the VM lab's Debian 12 image (testing/vm) with a vagrant login, as a
// .box file in the lab's image cache. It prints the file's path.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/borgkit/borgkit/testing/vm"
)

func main() {
	cache := flag.String("cache", vm.DefaultCacheDir, "the VM lab's image cache `DIR`")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	box, err := vm.BuildVagrantBox(ctx, *cache, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vagrantbox: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(box.File)
}
