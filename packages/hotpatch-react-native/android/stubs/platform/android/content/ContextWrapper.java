package android.content;

public class ContextWrapper extends Context {
  private final Context base;

  public ContextWrapper(Context base) {
    this.base = base;
  }

  public java.io.File getFilesDir() {
    return base.getFilesDir();
  }

  public android.content.res.AssetManager getAssets() {
    return base.getAssets();
  }

  public String getPackageName() {
    return base.getPackageName();
  }

  public android.content.pm.PackageManager getPackageManager() {
    return base.getPackageManager();
  }

  public Context getApplicationContext() {
    return base.getApplicationContext();
  }

  public void startActivity(Intent intent) {
    base.startActivity(intent);
  }
}
