package android.content.pm;

public abstract class PackageManager {
  public static class NameNotFoundException extends Exception {
    public NameNotFoundException(String name) {
      super(name);
    }
  }

  public abstract PackageInfo getPackageInfo(String packageName, int flags) throws NameNotFoundException;

  public abstract android.content.Intent getLaunchIntentForPackage(String packageName);
}
