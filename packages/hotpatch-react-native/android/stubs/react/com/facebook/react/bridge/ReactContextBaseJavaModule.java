package com.facebook.react.bridge;

public abstract class ReactContextBaseJavaModule extends BaseJavaModule {
  public ReactContextBaseJavaModule(ReactApplicationContext context) {
    super(context);
  }
}
