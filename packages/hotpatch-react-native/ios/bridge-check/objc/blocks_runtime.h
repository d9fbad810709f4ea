// The blocks runtime header GNUstep asks for when blocks are on; a syntax check needs no runtime.
