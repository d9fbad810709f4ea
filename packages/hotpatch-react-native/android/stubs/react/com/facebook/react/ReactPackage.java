package com.facebook.react;

public interface ReactPackage {}
