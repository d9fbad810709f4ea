package com.facebook.react.module.model;

public final class ReactModuleInfo {
  private final String name;
  private final boolean turbo;

  public ReactModuleInfo(
      String name,
      String className,
      boolean canOverrideExistingModule,
      boolean needsEagerInit,
      boolean isCxxModule,
      boolean isTurboModule) {
    this.name = name;
    this.turbo = isTurboModule;
  }

  public final String name() {
    return name;
  }

  public final boolean isTurboModule() {
    return turbo;
  }
}
