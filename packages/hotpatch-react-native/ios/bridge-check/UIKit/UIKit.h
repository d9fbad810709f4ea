// A stand-in for what React Native's bridge headers take from Apple's SDK (UIKit,
// libdispatch, the SDK's attribute macros), so GNUstep's clang can check the module's
// declarations against React Native's real headers.
#import <Foundation/Foundation.h>
@protocol OS_dispatch_queue
@end
typedef NSObject<OS_dispatch_queue> *dispatch_queue_t;
typedef void (^dispatch_block_t)(void);
#ifndef __nullable
#define __nullable _Nullable
#endif
#ifndef __nonnull
#define __nonnull _Nonnull
#endif
#ifndef __deprecated_msg
#define __deprecated_msg(message) __attribute__((deprecated(message)))
#endif
#ifndef NS_REQUIRES_SUPER
#define NS_REQUIRES_SUPER __attribute__((objc_requires_super))
#endif
@interface UIView : NSObject
@end
