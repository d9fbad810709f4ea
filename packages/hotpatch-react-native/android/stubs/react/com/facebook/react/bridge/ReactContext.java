package com.facebook.react.bridge;

public abstract class ReactContext extends android.content.ContextWrapper {
  public ReactContext(android.content.Context base) {
    super(base);
  }

  public void emitDeviceEvent(String eventName, Object data) {
    throw new RuntimeException("Stub!");
  }
}
