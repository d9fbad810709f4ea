package com.facebook.react.bridge;

public abstract class ReactApplicationContext extends ReactContext {
  public ReactApplicationContext(android.content.Context base) {
    super(base);
  }
}
