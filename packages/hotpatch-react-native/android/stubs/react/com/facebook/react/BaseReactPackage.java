package com.facebook.react;

import com.facebook.react.bridge.NativeModule;
import com.facebook.react.bridge.ReactApplicationContext;
import com.facebook.react.module.model.ReactModuleInfoProvider;

public abstract class BaseReactPackage implements ReactPackage {
  public BaseReactPackage() {}

  public abstract NativeModule getModule(String name, ReactApplicationContext reactContext);

  public abstract ReactModuleInfoProvider getReactModuleInfoProvider();
}
