/* placeholder: replaced by the demo work */
int main(void) { return 2; }
