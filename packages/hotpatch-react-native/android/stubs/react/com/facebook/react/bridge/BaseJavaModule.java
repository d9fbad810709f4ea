package com.facebook.react.bridge;

public abstract class BaseJavaModule implements NativeModule {
  private final ReactApplicationContext context;

  public BaseJavaModule(ReactApplicationContext context) {
    this.context = context;
  }

  protected final ReactApplicationContext getReactApplicationContext() {
    return context;
  }

  public void initialize() {}

  public void invalidate() {}
}
