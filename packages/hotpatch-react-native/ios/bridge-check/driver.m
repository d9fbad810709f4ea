// Loads the bridge's declarations (HotPatchModule.m, included by check_bridge.py) in
// GNUstep's Objective-C runtime and prints what React Native would read from them: the
// module's name and, per exported method, its JavaScript name, its Objective-C method
// signature and whether it is synchronous.
#include <objc/runtime.h>
#include <stdio.h>
#include <string.h>

// The superclass and the Swift class are Apple-only; empty ones let the runtime load the
// category RCT_EXTERN_MODULE declares.
@implementation RCTEventEmitter
@end

@implementation HotPatch
@end

// RCT_EXTERN_MODULE registers the class from a constructor; React Native reads it later.
void RCTRegisterModule(Class module) { (void)module; }

int main(void) {
  NSAutoreleasePool *pool = [NSAutoreleasePool new];
  Class module = objc_getClass("HotPatch");
  if (module == Nil) {
    printf("no class HotPatch\n");
    return 1;
  }
  printf("class %s\nmodule %s\n", class_getName(module), [[module moduleName] UTF8String]);
  unsigned int count = 0;
  Method *methods = class_copyMethodList(object_getClass(module), &count);
  for (unsigned int i = 0; i < count; i++) {
    const char *name = sel_getName(method_getName(methods[i]));
    if (strncmp(name, "__rct_export__", 14) != 0) continue;
    typedef const RCTMethodInfo *(*Export)(id, SEL);
    const RCTMethodInfo *info = ((Export)method_getImplementation(methods[i]))(module, method_getName(methods[i]));
    printf("method %s|%s|%d\n", info->jsName, info->objcName, (int)info->isSync);
  }
  free(methods);
  [pool release];
  return 0;
}
