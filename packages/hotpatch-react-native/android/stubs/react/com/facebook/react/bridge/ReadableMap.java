package com.facebook.react.bridge;

public interface ReadableMap {
  boolean hasKey(String name);

  String getString(String name);
}
